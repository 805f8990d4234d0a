"""Side products are read back by the kind and shape the pipeline declared: a misspelt kind is an
error, not an empty list or a zero."""
import apache_beam as beam
import pytest

from pipelines.beam_io import Products
from pipelines.runner import beam_pipeline
from pipelines.stage import MissingProductError, read_products


def test_declared_kinds_read_back_and_undeclared_ones_raise(tmp_path):
    work = str(tmp_path / "_work")
    with beam_pipeline(["--runner=DirectRunner"]) as p:
        products = Products()
        docs = p | beam.Create(["a", "bb", "ccc"])
        products.add(docs | beam.combiners.Count.Globally(), "n_docs")
        products.add(p | "Nothing" >> beam.Create([]), "plan")
        products.tally(docs, "chars", value=len)
        products.tally(docs | beam.Filter(lambda d: len(d) > 5), "long_docs")
        products.tally(docs, "by_len", key=len)
        products.write(work)
    got = read_products(work)
    assert got.one("n_docs") == 3 and got.values("n_docs") == [3]
    assert got.total("chars") == 6 and got.total("long_docs") == 0  # declared, nothing counted: zero
    assert sorted(got.pairs("by_len")) == [(1, 1), (2, 1), (3, 1)]
    assert got.one("plan", default={}) == {}
    with pytest.raises(MissingProductError, match="wrote no value"):
        got.one("plan")
    with pytest.raises(MissingProductError, match="'n_doc' was not declared"):
        got.one("n_doc")
    with pytest.raises(MissingProductError, match="declared as values"):
        got.total("n_docs")
