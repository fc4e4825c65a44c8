import sys

from liveshtr.analysis.report import main

sys.exit(main())
