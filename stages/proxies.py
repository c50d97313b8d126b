"""proxies@R: every small proxy run of one recipe (families x LRs x seeds) on forked workers."""
from proxyrank import stage
from proxyrank.training.recipe import train_recipe


def main(p, name):
    train_recipe(p, name, "proxy")


if __name__ == "__main__":
    stage.main("proxies", main, per_recipe=True)
