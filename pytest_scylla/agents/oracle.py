"""The oracle agent: applies the experiment's own solution, so a correct grader passes it.

The solution (``solution:`` in test.yaml) is one of:

* a ``.patch`` / ``.diff`` file: ``git apply`` in the workspace;
* a folder holding ``solve.sh``: the folder is copied, ``bash solve.sh`` runs in the workspace;
* any other file: a script, copied alone and run with ``bash``. A script that needs files
  beside it must be given as a folder (copying a script's parent could copy ``expected/``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pytest_scylla.agents.base import AgentRequest, base_env
from pytest_scylla.agents.command import host_path, run_process_agent
from pytest_scylla.records import AgentRecord
from pytest_scylla.sandbox.base import Sandbox

PATCH_SUFFIXES = (".patch", ".diff")
SOLUTION_DIR = "solution"
SOLVE_SCRIPT = "solve.sh"


def _solution_kind(solution: Path) -> str:
    if solution.is_dir():
        return "folder"
    return "patch" if solution.suffix in PATCH_SUFFIXES else "script"


class OracleAgent:
    name = "oracle"

    def prepare_inputs(self, request: AgentRequest) -> None:
        solution = request.experiment.solution
        if solution is None:
            return
        inputs = request.dirs.inputs
        inputs.mkdir(parents=True, exist_ok=True)
        kind = _solution_kind(solution)
        if kind == "folder":
            shutil.copytree(solution, inputs / SOLUTION_DIR, dirs_exist_ok=True)
        elif kind == "patch":
            shutil.copy2(solution, inputs / f"solution{solution.suffix}")
        else:
            shutil.copy2(solution, inputs / SOLVE_SCRIPT)

    def build_argv(self, request: AgentRequest, sandbox: Sandbox) -> list[str] | None:
        solution = request.experiment.solution
        if solution is None:
            return None
        inputs = sandbox.paths.inputs
        kind = _solution_kind(solution)
        if kind == "folder":
            return ["bash", f"{inputs}/{SOLUTION_DIR}/{SOLVE_SCRIPT}"]
        if kind == "patch":
            return ["git", "apply", "--whitespace=nowarn", f"{inputs}/solution{solution.suffix}"]
        return ["bash", f"{inputs}/{SOLVE_SCRIPT}"]

    def run(self, request: AgentRequest, sandbox: Sandbox) -> AgentRecord:
        argv = self.build_argv(request, sandbox)
        if argv is None:
            return AgentRecord(
                agent=self.name,
                finished=False,
                error_reason=f"experiment {request.experiment.id} has no solution to apply",
            )
        # The solution needs no credentials: only the scrubbed base environment.
        env = base_env(sandbox, host_path(request, sandbox))
        return run_process_agent(self.name, request, sandbox, argv, env)

    def parse_saved(self, agent_dir: Path, previous: AgentRecord) -> AgentRecord:
        return previous.model_copy()
