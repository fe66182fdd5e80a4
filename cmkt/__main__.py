from cmkt.cli import main

raise SystemExit(main())
