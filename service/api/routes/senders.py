"""Placeholder until the playbook's functions exist."""

from fastapi import APIRouter

router = APIRouter()
