"""references@R: the larger reference model of one recipe over its LR grid and seeds (tuned later)."""
from proxyrank import stage
from proxyrank.training.recipe import train_recipe


def main(p, name):
    train_recipe(p, name, "reference")


if __name__ == "__main__":
    stage.main("references", main, per_recipe=True)
