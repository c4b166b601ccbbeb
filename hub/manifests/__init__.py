"""Manifests: expected contents of receipts and shipments, CSV import, reconciliation."""
