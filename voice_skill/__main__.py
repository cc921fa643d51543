import sys

from voice_skill.cli.main import main

sys.exit(main())
