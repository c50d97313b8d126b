import os
import sys

from proxyrank.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # skip the interpreter's teardown of torch and transformers (proxyrank/stage.main)
