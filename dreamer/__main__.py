import sys

from dreamer.shell.cpu_devices import request_cpu_devices, seeds_together

request_cpu_devices(seeds_together(sys.argv[1:]))  # before JAX starts: XLA reads its flags once

from dreamer.cli import main  # noqa: E402

raise SystemExit(main())
