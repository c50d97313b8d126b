"""alignment: the zero-training proxy, each recipe's gradient against the validation gradient."""
from proxyrank import stage
from proxyrank.analysis.alignment import scores
from proxyrank.data import tokens
from proxyrank.files import atomic_path
from proxyrank.paths import REPORTS, TOKENIZER, recipe_stream, valid_streams
from proxyrank.timings import stage_file


def main(p):
    table = scores(p.train, p.proxies, p.alignment, {r: recipe_stream(r) for r in p.recipes},
                   valid_streams(p.split.valid_domains),
                   tokens.load(TOKENIZER).get_vocab_size(), timing_path=stage_file("alignment"))
    with atomic_path(REPORTS / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g")
    print(f"alignment: {len(table)} scores, {table.tokens.sum():,.0f} tokens forward and backward")


if __name__ == "__main__":
    stage.main("alignment", main)
