from taskpack import define_task


@define_task(description="Run database migrations")
async def run(event):
    print("Running DB migration task...", event.payload)
    return {"result": "Success"}
