"""jupyter_kernel_test's conformance suite against the installed `async` and `async-trio` specs.

`KernelTests` starts one kernel per class with `start_new_kernel(kernel_name=...)`, which finds
kernelspecs through `JUPYTER_PATH`; the class start runs inside the isolated environment of the
`kernel_env` fixture, where both specs are installed into a temporary prefix.
"""

from __future__ import annotations

import jupyter_kernel_test
import pytest
from kernel_harness import SPEC_NAMES, current_env

pytestmark = pytest.mark.timeout(120)


class AsyncKernelConformance(jupyter_kernel_test.KernelTests):
    """What every async-kernel kernelspec must pass (the subclasses below run it)."""

    __test__ = False

    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('oops', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import sys\nsys.version_i", "matches": {"version_info"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q", "1 +* 2"]

    code_page_something = "print?"

    code_generate_error = "raise ValueError('expected')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"},
        {"code": "'text'", "result": "'text'"},
    ]

    code_display_data = [
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))",
            "mime": "text/html",
        },
        {
            "code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))",
            "mime": "text/latex",
        },
    ]

    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"

    @classmethod
    def setUpClass(cls) -> None:
        with current_env().applied():
            super().setUpClass()


class TestAsyncioKernelSpec(AsyncKernelConformance):
    """The `async` kernelspec (asyncio)."""

    __test__ = True
    kernel_name = SPEC_NAMES["asyncio"]


class TestTrioKernelSpec(AsyncKernelConformance):
    """The `async-trio` kernelspec (trio)."""

    __test__ = True
    kernel_name = SPEC_NAMES["trio"]
