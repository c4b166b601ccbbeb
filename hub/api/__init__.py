"""HTTP API of the hub, versioned under /api/v1; one router module per resource."""
