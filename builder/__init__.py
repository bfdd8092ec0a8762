"""Build time: config loading, task discovery, the resolved :class:`Project`,
bundling, the CLI and the dev server. Installed as ``taskpack.builder``."""
