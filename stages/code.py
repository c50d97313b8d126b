"""code: the code each stage runs, hashed into one small file per stage (data/code/STAGE.txt, `sha256  path`
lines), so that a stage depends on that file instead of listing every module (proxyrank/tools/deps.py)."""
from pathlib import Path

from proxyrank import stage
from proxyrank.tools.deps import CODE_DIR, write_digests


def main(p):
    write_digests(Path.cwd(), Path(CODE_DIR))


if __name__ == "__main__":
    stage.main("code", main)
