"""export: each recipe's tuned reference as a Hugging Face model folder (save_pretrained + tokenizer)."""
from proxyrank import stage
from proxyrank.paths import MODELS, RUNS, TOKENIZER, recipe_stream, valid_streams
from proxyrank.training.export import export_references


def main(p):
    export_references(p, RUNS / "references", recipe_stream, valid_streams(p.split.valid_domains), TOKENIZER,
                      MODELS)


if __name__ == "__main__":
    stage.main("export", main)
