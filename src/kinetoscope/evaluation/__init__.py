"""Evaluations of generated videos: prompt-adherence suites judged by the Shapes World analyzer."""
