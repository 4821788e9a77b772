"""The tier catalogue: layered folders of tiers, sub-tests, blocks, skills and agents.

Layers are searched first to last: an experiment's own `tiers/`, a `_tiers/` folder beside
the experiments, a folder given with `--scylla-tiers-dir`, and last the catalogue shipped
in the package. A sub-test or resource in an earlier layer overrides a later one of the
same name, so an experiment can add or replace single sub-tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pytest_scylla.spec.errors import SpecError
from pytest_scylla.spec.experiment import TIER_IDS
from pytest_scylla.spec.loading import parse_model
from pytest_scylla.spec.subtest import ResourcesSpec, SubTestSpec, TierCatalogueSpec, TierInfo

PACKAGED_CATALOGUE = Path(__file__).resolve().parent.parent / "data" / "tiers"


@dataclass(frozen=True)
class ResolvedSubTest:
    """A sub-test with `extends_previous` applied: exactly what gets materialized."""

    tier: str
    id: str  # the file stem, e.g. "00-empty": part of node ids and result paths
    spec: SubTestSpec
    resources: ResourcesSpec
    source_file: Path


@dataclass
class Catalogue:
    layers: tuple[Path, ...]
    tier_info: dict[str, TierInfo] = field(default_factory=dict)
    _subtests: dict[str, list[ResolvedSubTest]] = field(default_factory=dict)

    def subtests(self, tier: str) -> list[ResolvedSubTest]:
        if tier not in self._subtests:
            self._subtests[tier] = self._resolve_tier(tier)
        return self._subtests[tier]

    def _subtest_files(self, tier: str) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for layer in reversed(self.layers):  # later layers first, earlier ones override
            tier_dir = layer / tier
            if tier_dir.is_dir():
                for path in tier_dir.glob("*.yaml"):
                    files[path.stem] = path
        return dict(sorted(files.items()))

    def _resolve_tier(self, tier: str) -> list[ResolvedSubTest]:
        resolved = []
        base: ResourcesSpec | None = None
        for subtest_id, path in self._subtest_files(tier).items():
            spec = parse_model(path, SubTestSpec)
            resources = spec.resources
            if spec.extends_previous:
                if base is None:
                    base = self._previous_baseline(tier, path)
                resources = resources.merged_over(base)
            self._check_resources_exist(resources, path)
            resolved.append(ResolvedSubTest(tier, subtest_id, spec, resources, path))
        return resolved

    def _previous_baseline(self, tier: str, requested_by: Path) -> ResourcesSpec:
        index = TIER_IDS.index(tier)
        if index == 0:
            raise SpecError(requested_by, [("extends_previous", "T0 has no previous tier")])
        previous = TIER_IDS[index - 1]
        info = self.tier_info.get(previous)
        candidates = self.subtests(previous)
        if not candidates:
            raise SpecError(
                requested_by, [("extends_previous", f"tier {previous} has no sub-tests")]
            )
        wanted = info.baseline if info else None
        for candidate in candidates:
            if candidate.id == wanted:
                return candidate.resources
        if wanted is not None:
            raise SpecError(
                requested_by,
                [("extends_previous", f"baseline {wanted!r} of tier {previous} does not exist")],
            )
        return candidates[-1].resources

    def _check_resources_exist(self, resources: ResourcesSpec, source_file: Path) -> None:
        for position, block in enumerate(resources.claude_md.blocks):
            if self.find_block(block) is None:
                raise SpecError(
                    source_file,
                    [
                        (
                            f"resources.claude_md.blocks[{position}]",
                            f"no block {block!r} in {self._where()}",
                        )
                    ],
                )
        for position, skill in enumerate(resources.skills):
            if self.find_resource("skills", skill, "") is None:
                raise SpecError(
                    source_file,
                    [(f"resources.skills[{position}]", f"no skill {skill!r} in {self._where()}")],
                )
        for position, agent in enumerate(resources.agents):
            if self.find_resource("agents", agent, ".md") is None:
                raise SpecError(
                    source_file,
                    [(f"resources.agents[{position}]", f"no agent {agent!r} in {self._where()}")],
                )

    def _where(self) -> str:
        return ", ".join(str(layer) for layer in self.layers)

    def find_block(self, block_id: str) -> Path | None:
        for layer in self.layers:
            matches = sorted((layer / "blocks").glob(f"{block_id}-*.md")) + sorted(
                (layer / "blocks").glob(f"{block_id}.md")
            )
            if matches:
                return matches[0]
        return None

    def find_resource(self, kind: str, name: str, suffix: str) -> Path | None:
        if "/" in name or "\\" in name or name.startswith("."):
            return None
        for layer in self.layers:
            candidate = layer / kind / f"{name}{suffix}"
            if candidate.exists():
                return candidate
        return None


def catalogue_layers(experiment_dir: Path, extra_dir: Path | None) -> tuple[Path, ...]:
    candidates = [experiment_dir / "tiers", experiment_dir.parent / "_tiers"]
    if extra_dir is not None:
        candidates.append(extra_dir)
    candidates.append(PACKAGED_CATALOGUE)
    return tuple(path.resolve() for path in candidates if path.is_dir())


@cache
def load_catalogue(layers: tuple[Path, ...]) -> Catalogue:
    """One catalogue per distinct layer stack: 10,000 items share a handful of them."""
    tier_info: dict[str, TierInfo] = {}
    for layer in reversed(layers):
        tiers_file = layer / "tiers.yaml"
        if tiers_file.is_file():
            tier_info.update(parse_model(tiers_file, TierCatalogueSpec).tiers)
    return Catalogue(layers=layers, tier_info=tier_info)
