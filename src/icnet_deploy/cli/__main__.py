"""``python -m icnet_deploy.cli``: the ``icnet-deploy`` command (what tests run in a subprocess)."""

from . import main

main()
