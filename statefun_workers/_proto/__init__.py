"""Protobuf modules generated from protos/ by scripts/gen_protos.py; do not edit them by hand."""
