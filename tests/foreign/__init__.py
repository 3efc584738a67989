"""LookupViTs written differently from ours (test-only), for the --model path and the passes."""
