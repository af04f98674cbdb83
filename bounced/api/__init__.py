"""What operators and applications read: the HTTP API's description (``openapi``), lists and
summaries (``overview``), an address's state and history (``views``), the dashboard's files."""
