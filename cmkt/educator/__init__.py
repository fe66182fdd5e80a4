"""For educators: mastery levels and practise-next suggestions, the class view, printable reports."""
