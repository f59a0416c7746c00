"""async-kernel provisioner: launches async-kernel processes from jupyter_client."""
