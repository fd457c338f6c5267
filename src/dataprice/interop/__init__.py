"""Working with the rest of the data-valuation ecosystem.

* :mod:`.shapiq_games`: a dataprice game as a shapiq ``Game`` (:func:`to_shapiq`) and a
  shapiq game as a dataprice game (:func:`from_shapiq`). Both libraries use the contract
  ``value_function(bool[m, n]) -> float[m]``, so the adapters only forward calls; shapiq's
  approximators and exact computer then run on a buyer's game, and dataprice's methods and
  markets on a shapiq benchmark game. Needs ``pip install dataprice[interop]``.
* :mod:`.pydvl_results`: pyDVL's ``ValuationResult`` to and from dataprice's
  (:func:`to_pydvl`, :func:`from_pydvl`). pyDVL pins numpy below 2, so it lives in its own
  environment; the conversion imports it only when called.
* :mod:`.tables`: a tabulated game exported to and imported from NPZ or Parquet with a
  manifest (:func:`export_game`, :func:`import_game`), for any tool that reads arrays.

Nothing here is imported by the rest of dataprice.
"""
