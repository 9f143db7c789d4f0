from tripwire.cli import app

app()
