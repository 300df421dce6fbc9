import sys

from dreamer.shell.cpu_devices import request_cpu_devices, trains_seeds_together

if trains_seeds_together(sys.argv[1:]):
    request_cpu_devices()  # before JAX starts: XLA reads its flags once

from dreamer.cli import main  # noqa: E402

raise SystemExit(main())
