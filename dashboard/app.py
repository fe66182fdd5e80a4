"""Streamlit entry point (placeholder until the dashboard lands)."""
import streamlit as st

st.set_page_config(page_title="cmkt", layout="wide")
st.title("cmkt — Cumulative Mastery Knowledge Tracing")
st.write("The dashboard is being built.")
