"""distilrank.formats.sentences: the regex sentence splitter."""

from distilrank.formats.sentences import split_sentences


def test_split_sentences():
    assert split_sentences("Great pan. Heats evenly! Would buy again?\n\nYes") == ["Great pan.", "Heats evenly!", "Would buy again?", "Yes"]
    assert split_sentences("Version 2.5 is fine.") == ["Version 2.5 is fine."]
    assert split_sentences('He said "stop." Then   it\nbroke.') == ['He said "stop."', "Then it broke."]
    assert split_sentences("Ask Mr. Smith. Or Dr. C. Jones.") == ["Ask Mr. Smith.", "Or Dr. C. Jones."]
    assert split_sentences("Pros:\n1) sharp\n2) light") == ["Pros:", "1) sharp", "2) light"]
    assert split_sentences("  \n ") == []
