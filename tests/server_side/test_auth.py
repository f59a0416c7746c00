"""The endpoints are authenticated and authorized like jupyter_server's own kernel endpoints."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from jupyter_server.auth import Authorizer

LIST = ("api", "async-kernel", "kernels")
DETAIL = ("api", "async-kernel", "kernels", "00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("parts", [LIST, DETAIL], ids=["list", "detail"])
async def test_request_without_a_token_gets_403(api: Any, parts: tuple[str, ...]) -> None:
    status, body = await api(*parts, headers={"Authorization": ""})

    assert status == 403
    assert "message" in body


@pytest.mark.parametrize("parts", [LIST, DETAIL], ids=["list", "detail"])
async def test_request_with_a_wrong_token_gets_403(api: Any, parts: tuple[str, ...]) -> None:
    status, _ = await api(*parts, headers={"Authorization": "token not-the-token"})

    assert status == 403


class DenyKernelsRead(Authorizer):
    """Allows everything except reading the ``kernels`` resource; records what it was asked."""

    asked: ClassVar[list[tuple[str, str | None]]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if "/api/async-kernel/" in handler.request.path:
            DenyKernelsRead.asked.append((action, resource))
        return not (resource == "kernels" and action == "read")


class TestWithAnAuthorizerDenyingKernelsRead:
    @pytest.fixture
    def extra_server_config(self) -> dict[str, Any]:
        DenyKernelsRead.asked.clear()
        return {"ServerApp": {"authorizer_class": DenyKernelsRead}}

    @pytest.mark.parametrize("parts", [LIST, DETAIL], ids=["list", "detail"])
    async def test_endpoint_gets_403(self, api: Any, parts: tuple[str, ...]) -> None:
        status, body = await api(*parts)

        assert status == 403
        assert "kernels" in body["message"]
        assert DenyKernelsRead.asked == [("read", "kernels")]

    async def test_other_resources_stay_allowed(self, api: Any) -> None:
        status, _ = await api("api", "contents")

        assert status == 200
