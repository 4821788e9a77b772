"""Models of the tier catalogue: `tiers.yaml` and one YAML file per sub-test.

Catalogue layout (the package ships one; an experiment may add or override):

    tiers.yaml                 T0..T6: name, description, baseline sub-test
    blocks/B01-<slug>.md       CLAUDE.md blocks, referred to as B01
    skills/<name>/SKILL.md     skills (the whole folder is copied)
    agents/<name>.md           sub-agent definitions
    T0/00-empty.yaml ...       sub-tests, ordered by file name
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClaudeMdSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blocks: list[str] = Field(default_factory=list)


class McpServerSpec(BaseModel):
    """One entry of `.mcp.json` (stdio transport)."""

    model_config = ConfigDict(extra="forbid")

    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


class ToolsSpec(BaseModel):
    """Tool restrictions, passed to Claude Code as --allowedTools / --disallowedTools."""

    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = None
    disallowed: list[str] = Field(default_factory=list)


class ResourcesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claude_md: ClaudeMdSpec = ClaudeMdSpec()
    skills: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    mcp_servers: dict[str, McpServerSpec] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)  # merged into .claude/settings.json
    tools: ToolsSpec = ToolsSpec()

    def merged_over(self, base: ResourcesSpec) -> ResourcesSpec:
        """These resources added on top of `base` (what `extends_previous` means)."""

        def union(first: list[str], second: list[str]) -> list[str]:
            return first + [entry for entry in second if entry not in first]

        return ResourcesSpec(
            claude_md=ClaudeMdSpec(blocks=union(base.claude_md.blocks, self.claude_md.blocks)),
            skills=union(base.skills, self.skills),
            agents=union(base.agents, self.agents),
            mcp_servers={**base.mcp_servers, **self.mcp_servers},
            settings=_deep_merge(base.settings, self.settings),
            tools=ToolsSpec(
                allowed=self.tools.allowed
                if self.tools.allowed is not None
                else base.tools.allowed,
                disallowed=union(base.tools.disallowed, self.tools.disallowed),
            ),
        )


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SubTestSpec(BaseModel):
    """One agent configuration inside a tier."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    extends_previous: bool = False  # start from the previous tier's baseline sub-test
    resources: ResourcesSpec = ResourcesSpec()
    extra_args: list[str] = Field(default_factory=list)  # extra agent CLI flags


class TierInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    baseline: str | None = None  # the sub-test that later tiers' `extends_previous` builds on


class TierCatalogueSpec(BaseModel):
    """`tiers.yaml`."""

    model_config = ConfigDict(extra="forbid")

    tiers: dict[str, TierInfo]
