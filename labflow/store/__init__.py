"""Durable records of a campaign: the HDF5 provenance file and reading it back."""

from labflow.store.provenance import CampaignRecord, ProvenanceWriter, read_campaign

__all__ = ["ProvenanceWriter", "CampaignRecord", "read_campaign"]
