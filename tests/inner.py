"""What every inner pytester run needs: the inner rootdir has no ini of its own."""

INNER_ARGS = (
    "-p",
    "no:cacheprovider",
    "-o",
    "asyncio_mode=auto",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)
