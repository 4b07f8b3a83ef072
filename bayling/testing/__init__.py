"""Test helpers, in one place and out of the stage packages: a scripted engine (FakeEngine), a fake
OpenAI-compatible teacher server (FakeTeacher), tiny random models built on the fly, and a
background uvicorn server on loopback. Used by the suite and the benchmarks; no stage imports them.
"""
