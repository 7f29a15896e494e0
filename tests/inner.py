"""What every inner pytester run needs: the inner rootdir has no ini of its own."""

INNER_ARGS = (
    "-p",
    "no:cacheprovider",
    # langsmith (with langchain in the test extra) has a plugin that imports for ~0.75 s in
    # every pytest process; no inner run uses it
    "-p",
    "no:langsmith_plugin",
    "-o",
    "asyncio_mode=auto",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)
