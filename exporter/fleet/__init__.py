"""Several deployment profiles in one run, here or on a Ray cluster, and the fleet report
(:mod:`.fleet`); above the run and its executors (docs/architecture.md, Distribution)."""

from .fleet import FLEET_JSON, FleetResult, parse_profiles, profile_folders, run_fleet, write_fleet_report

__all__ = ["FLEET_JSON", "FleetResult", "parse_profiles", "profile_folders", "run_fleet", "write_fleet_report"]
