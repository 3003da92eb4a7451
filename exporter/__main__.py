"""`python -m exporter` runs the same command as `unipost-exporter`."""

from exporter.cli import main

raise SystemExit(main())
