"""Manifest routes: create, list, close, confirm by hand, reconciliation."""

from fastapi import APIRouter

router = APIRouter(tags=["manifests"])
