"""The launcher for gateway_provisioners' remote provisioners (`python -m async_kernel.launch`).

A remote provisioner (Kubernetes, Docker, YARN, SSH) starts a launcher where the kernel is to
run and waits on its *response address* for the kernel's connection info. The launcher here:

1. reads its arguments and the environment the provisioners' bootstrap sets
   ([options][async_kernel._remote.options]);
2. picks free ports for the five kernel channels and the comm port and writes a private
   connection file ([connection][async_kernel._remote.connection]);
3. sends the connection info, encrypted with the provisioner's public key, to the response
   address ([response][async_kernel._remote.response]);
4. starts the kernel (`python -m async_kernel launch -f FILE`) as its child
   ([supervisor][async_kernel._remote.supervisor]) and serves the comm port, on which the
   provisioner sends signals and the shutdown request ([listener][async_kernel._remote.listener]),
   until the kernel ends ([launcher][async_kernel._remote.launcher] puts it together).

Nothing here imports the kernel's runtime (IPython): the kernel runs in its own process.
"""
