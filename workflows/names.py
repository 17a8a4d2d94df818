"""Workflow, update, signal, query and activity names. They are API: a rename breaks runs in flight."""

AGENT_WORKFLOW = "AgentWorkflow"
RUN_WORKFLOW = "RunWorkflow"

SUBMIT_UPDATE = "submit"
SUBMIT_SIGNAL = "submit_run"
CANCEL_SIGNAL = "cancel"
STATE_QUERY = "state"

RUNS_START = "runs.start"
RUNS_FINISH = "runs.finish"
RUNS_CALLBACK = "runs.callback"
LLM_STEP = "llm.step"
TOOLS_EXECUTE = "tools.execute"
MEMORY_COMPACT = "memory.compact"
# POST /v1/agents/{id}/tools/{name}/run: one tool call outside any run, in a workflow of its own.
TOOL_RUN_WORKFLOW = "ToolRunWorkflow"
TOOLS_RUN = "tools.run"
APPROVALS_DENY = "approvals.deny"


def agent_workflow_id(agent_id: str) -> str:
    return f"agent:{agent_id}"


def run_workflow_id(run_id: str) -> str:
    return f"run:{run_id}"


def tool_run_workflow_id(key: str) -> str:
    return f"tool-run:{key}"
