from aiwgd.main import main

raise SystemExit(main())
