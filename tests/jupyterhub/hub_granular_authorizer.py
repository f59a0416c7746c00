"""A granular JupyterHub authorizer for the single-user servers of the read-only tests.

Imported by the single-user server (``--ServerApp.authorizer_class=
hub_granular_authorizer.GranularJupyterHubAuthorizer``; the harness puts this folder on the
server's ``PYTHONPATH``), never by the tests themselves.

jupyterhub-singleuser only checks ``access:servers`` (in its identity provider): by default any
token that may reach a server may do everything there. This authorizer, JupyterHub's documented
pattern for read-only access (``examples/read-only`` of the JupyterHub repository), also asks for
a custom scope per jupyter_server permission: ``custom:jupyter_server:{action}:{resource}`` (or
``custom:jupyter_server:{action}:*``), filtered to this server as JupyterHub filters scopes
(``!user={owner}`` or ``!server={owner}/{server name}``). jupyter_server names the permission of
each request: ``GET /api/kernels`` is ``read`` on ``kernels``, ``POST /api/kernels`` is
``write``, the kernel websocket is ``execute``, and the async-kernel endpoints are ``read`` on
``kernels`` like ``GET /api/kernels``.
"""

from __future__ import annotations

import os
from typing import Any

from jupyterhub.singleuser.extension import JupyterHubAuthorizer

__all__ = ["GranularJupyterHubAuthorizer", "required_scopes"]


def required_scopes(action: str, resource: str, user: str, server_name: str) -> set[str]:
    """The scopes of which a token needs one to take ``action`` on ``resource`` here."""
    filters = (f"!user={user}", f"!server={user}/{server_name}")
    return {
        f"custom:jupyter_server:{action}:{what}{where}"
        for what in (resource, "*")
        for where in filters
    }


class GranularJupyterHubAuthorizer(JupyterHubAuthorizer):  # type: ignore[misc]
    """Authorize a request only if its token holds the custom scope of that permission."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        """Whether the token's scopes (as the hub resolved them) grant ``action`` on
        ``resource`` on this server; ``access:servers`` alone grants nothing here."""
        needed = required_scopes(
            action,
            resource,
            os.environ["JUPYTERHUB_USER"],
            os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
        )
        have = self.hub_auth.check_scopes(needed, user.hub_user)
        self.log.debug("%s may %s %s: %s", user.username, action, resource, sorted(have))
        return bool(have)
