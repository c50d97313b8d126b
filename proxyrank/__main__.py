import sys

from proxyrank.cli import main

sys.exit(main())
