"""Allow ``python -m bot`` as a synonym of the ``rehost`` console script."""

from __future__ import annotations

from bot.cli import main

raise SystemExit(main())
