import sys

from liveshtr.cli import main

sys.exit(main())
