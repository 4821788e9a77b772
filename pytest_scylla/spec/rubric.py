"""Model of `expected/rubric.yaml` in both upstream forms, and one normalized view of them.

Upstream rubrics come as `categories:` (weights sum to 1, items with points) or as the
older `requirements:` list (relative weights, binary or scaled). Scoring code only ever
sees `NormalizedRubric`, so both forms score the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WEIGHT_TOLERANCE = 1e-6
DEFAULT_PASS_THRESHOLD = 0.60


class RubricItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    check: str
    points: float = Field(ge=0)
    na_condition: str | None = None
    command: str | None = None  # exit 0 in the finished workspace = full points
    command_timeout_seconds: float = Field(default=120, gt=0)


class RubricCategory(BaseModel):
    model_config = ConfigDict(extra="allow")

    weight: float = Field(ge=0)
    scoring_type: str = "checklist"
    items: list[RubricItem] = Field(min_length=1)


class Requirement(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    description: str
    weight: float = Field(gt=0)
    evaluation: Literal["binary", "scaled"] = "scaled"
    criteria: list[str] = Field(default_factory=list)
    skill_validation: str | None = None
    skill_source: str | None = None
    na_condition: str | None = None
    command: str | None = None
    command_timeout_seconds: float = Field(default=120, gt=0)


class Grading(BaseModel):
    model_config = ConfigDict(extra="allow")

    pass_threshold: float | None = Field(default=None, ge=0, le=1)
    grade_scale: dict[str, float] = Field(default_factory=dict)


class Rubric(BaseModel):
    model_config = ConfigDict(extra="allow")

    categories: dict[str, RubricCategory] | None = None
    requirements: list[Requirement] | None = None
    grading: Grading = Grading()

    @field_validator("categories")
    @classmethod
    def _weights_sum_to_one(
        cls, value: dict[str, RubricCategory] | None
    ) -> dict[str, RubricCategory] | None:
        if value is not None:
            if not value:
                raise ValueError("at least one category is needed")
            total = sum(category.weight for category in value.values())
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                raise ValueError(f"category weights must sum to 1, they sum to {total:.6g}")
        return value

    @field_validator("requirements")
    @classmethod
    def _requirements_not_empty(cls, value: list[Requirement] | None) -> list[Requirement] | None:
        if value is not None and not value:
            raise ValueError("at least one requirement is needed")
        return value

    @model_validator(mode="after")
    def _one_form_and_unique_ids(self) -> Rubric:
        if (self.categories is None) == (self.requirements is None):
            raise ValueError("a rubric needs exactly one of 'categories' or 'requirements'")
        seen: set[str] = set()
        for item_id in self.normalized().item_ids():
            if item_id in seen:
                raise ValueError(f"duplicate item id {item_id!r}")
            seen.add(item_id)
        return self

    def normalized(self) -> NormalizedRubric:
        if self.categories is not None:
            return NormalizedRubric(
                categories=[
                    NormalizedCategory(
                        name=name,
                        weight=category.weight,
                        items=[
                            NormalizedItem(
                                id=item.id,
                                check=item.check,
                                points=item.points,
                                na_condition=item.na_condition,
                                command=item.command,
                                command_timeout_seconds=item.command_timeout_seconds,
                                binary=False,
                            )
                            for item in category.items
                        ],
                    )
                    for name, category in self.categories.items()
                ]
            )
        requirements = self.requirements or []
        total_weight = sum(req.weight for req in requirements)
        # Each requirement becomes a one-item category so relative weights carry over as is.
        return NormalizedRubric(
            categories=[
                NormalizedCategory(
                    name=req.id,
                    weight=req.weight / total_weight,
                    items=[
                        NormalizedItem(
                            id=req.id,
                            check=req.description
                            + "".join(f"\n- {criterion}" for criterion in req.criteria),
                            points=1.0,
                            na_condition=req.na_condition,
                            command=req.command,
                            command_timeout_seconds=req.command_timeout_seconds,
                            binary=req.evaluation == "binary",
                        )
                    ],
                )
                for req in requirements
            ]
        )


class NormalizedItem(BaseModel):
    id: str
    check: str
    points: float
    na_condition: str | None
    command: str | None
    command_timeout_seconds: float
    binary: bool  # only 0 or full points make sense


class NormalizedCategory(BaseModel):
    name: str
    weight: float
    items: list[NormalizedItem]


class NormalizedRubric(BaseModel):
    categories: list[NormalizedCategory]

    def item_ids(self) -> list[str]:
        return [item.id for category in self.categories for item in category.items]

    def items(self) -> list[NormalizedItem]:
        return [item for category in self.categories for item in category.items]
