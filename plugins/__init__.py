"""Native implementations of fused ops (installed as ``icnet_deploy.kernels``; see plugins/README.md)."""
