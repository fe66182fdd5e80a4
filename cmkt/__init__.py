"""cmkt: Cumulative Mastery Knowledge Tracing (library; never imports streamlit)."""
__version__ = "0.1.0"
