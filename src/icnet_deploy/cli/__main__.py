"""``python -m icnet_deploy.cli``: the same as the ``icnet-deploy`` command."""

from . import main

main()
