"""recipe@R: one recipe's training token stream, drawn from the pool or the curated crawl."""
import numpy as np

from proxyrank import stage
from proxyrank.curation import recipes
from proxyrank.curation.inputs import recipe_docs
from proxyrank.data import tokens
from proxyrank.files import atomic_dir, write_json
from proxyrank.paths import CRAWL, CURATED, POOL, RECIPES, REPORTS, TOKENIZER


def main(p, name):
    recipe = p.recipe(name)
    docs, signatures = recipe_docs(recipe.source, POOL, CRAWL, CURATED)
    stream, manifest = recipes.build(recipe, docs, tokens.load(TOKENIZER), p.budget_tokens, p.seed,
                                     p.curation, signatures)
    with atomic_dir(RECIPES / name) as tmp:
        with open(tmp / "train.npy", "wb") as f:
            np.save(f, stream, allow_pickle=False)
    write_json(REPORTS / "recipes" / f"{name}.json", manifest | {"data_key": p.data_key(name)})
    print(f"recipe {name}: {manifest['docs']} docs, {manifest['tokens']} tokens, shares {manifest['shares']}")


if __name__ == "__main__":
    stage.main("recipe", main, per_recipe=True)
