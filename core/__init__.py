"""What every app uses and none owns: the actor, errors, task dispatch, paging, htmx responses."""
