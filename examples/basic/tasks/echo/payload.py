"""Echo the payload back."""

from taskpack import define_task


@define_task
def run(event):
    return {"result": event.payload}
