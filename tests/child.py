"""What a test's child process needs before it runs the tool."""

import signal


def default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal delivers it. A shell that starts a job in the
    background without job control starts it with SIGINT ignored, and a child inherits that (Python then
    installs no KeyboardInterrupt handler): a test of Ctrl-C would then test its harness, not the tool."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
