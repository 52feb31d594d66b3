"""Place mode for the click markups, kept on while a session runs (no Qt).

Slicer ends point placement on its own: a right-click or a left double-click in a view
(vtkSlicerMarkupsWidget: WidgetEventStopPlace -> SwitchToViewTransformMode), and a right-drag zoom counts.
`ClickPlacement` observes the interaction node (InteractionModeChangedEvent) and puts place mode back for
the current polarity while it is `active`; when another tool took over (the active place node is no longer
ours) it stops and says so in `off_reason` instead of fighting the user. Place-mode persistence is global
(on the interaction singleton): the value found at `arm()` is restored by `stop()`.
"""
from __future__ import annotations

import logging

import slicer

INTERACTION_NODE_ID = "vtkMRMLInteractionNodeSingleton"
SELECTION_NODE_ID = "vtkMRMLSelectionNodeSingleton"


def _immediately(callback):
    callback()


class ClickPlacement:
    """Persistent place mode into the positive or the negative markups node, re-armed when Slicer ends it.

    `schedule(callback)` runs the re-arm (a GUI passes e.g. `lambda f: qt.QTimer.singleShot(0, f)` so the
    view finishes its own event first); `on_change()` is called after every change of state (for a status
    line); `on_error(message, exception)` gets the errors of the observer (an observer cannot raise).
    """

    def __init__(self, schedule=None, on_change=None, on_error=None):
        self.nodes = (None, None)       # (positive, negative) markups nodes
        self.positive = True
        self.active = False             # re-arm when Slicer ends place mode
        self.off_reason = None          # why clicks are not captured, when they are not
        self.rearm_count = 0
        self.schedule = schedule or _immediately
        self.on_change, self.on_error = on_change, on_error
        self._interaction = None
        self._observer = None
        self._saved_persistence = None
        self._arming = False
        self._rearm_pending = False

    @staticmethod
    def _singletons():
        scene = slicer.mrmlScene
        interaction = scene.GetNodeByID(INTERACTION_NODE_ID) or scene.GetFirstNodeByClass("vtkMRMLInteractionNode")
        selection = scene.GetNodeByID(SELECTION_NODE_ID) or scene.GetFirstNodeByClass("vtkMRMLSelectionNode")
        if interaction is None or selection is None:
            raise RuntimeError("the scene has no interaction or selection node")
        return interaction, selection

    def start(self, positive_node, negative_node, positive=True):
        """Capture clicks into these nodes from now on (place mode for `positive`)."""
        self.nodes = (positive_node, negative_node)
        self.active = True
        self._rearm_pending = False
        self.arm(positive)

    def arm(self, positive=None):
        """Place mode into the node of `positive` (None: the current polarity), even if already placing."""
        if positive is not None:
            self.positive = bool(positive)
        node = self.nodes[0 if self.positive else 1]
        if node is None or node.GetScene() is None:
            self.off_reason = "no click node; press Start"
            self._changed()
            return
        interaction, selection = self._singletons()
        self._observe(interaction)
        if self._saved_persistence is None:
            self._saved_persistence = interaction.GetPlaceModePersistence()
        self._arming = True
        try:
            selection.SetReferenceActivePlaceNodeClassName(node.GetClassName())
            selection.SetActivePlaceNodeID(node.GetID())
            interaction.SetPlaceModePersistence(1)
            interaction.SetCurrentInteractionMode(interaction.Place)
        finally:
            self._arming = False
        self.active = True
        self.off_reason = None
        self._changed()

    def is_placing(self) -> bool:
        """Whether a click in a view now places a point into one of our nodes."""
        return self._interaction is not None and self.is_placing_into_ours(self._interaction)

    def stop(self):
        """No more re-arming; leave place mode if it is ours; restore the persistence found at `arm()`."""
        self.active = False
        self._rearm_pending = False
        interaction = self._interaction
        if interaction is not None:
            if self._observer is not None:
                interaction.RemoveObserver(self._observer)
            self._observer = None
            if self.is_placing_into_ours(interaction):
                interaction.SwitchToViewTransformMode()
            if self._saved_persistence is not None:
                interaction.SetPlaceModePersistence(self._saved_persistence)
        self._interaction = None
        self._saved_persistence = None
        self.off_reason = None
        self._changed()

    def is_placing_into_ours(self, interaction) -> bool:
        try:
            _, selection = self._singletons()
        except RuntimeError:
            return False
        ours = [n.GetID() for n in self.nodes if n is not None and n.GetID()]
        return interaction.GetCurrentInteractionMode() == interaction.Place and selection.GetActivePlaceNodeID() in ours

    # ---- the observer -------------------------------------------------------------------------
    def _observe(self, interaction):
        if self._interaction is interaction and self._observer is not None:
            return
        if self._interaction is not None and self._observer is not None:
            self._interaction.RemoveObserver(self._observer)
        self._interaction = interaction
        self._observer = interaction.AddObserver(interaction.InteractionModeChangedEvent, self._on_mode_changed)

    def _on_mode_changed(self, caller, event):
        try:
            if self._arming or not self.active or self._rearm_pending:
                return
            if caller.GetCurrentInteractionMode() == caller.Place:
                if not self.is_placing_into_ours(caller):  # the user picked another markups tool
                    self.active = False
                    self.off_reason = "another placement tool is active; press p or n to click again"
                    self._changed()
                return
            _, selection = self._singletons()
            ours = [n.GetID() for n in self.nodes if n is not None]
            if selection.GetActivePlaceNodeID() not in ours:
                self.active = False
                self.off_reason = "another placement tool was used; press p or n to click again"
                self._changed()
                return
            # Slicer ended our placement (right-click, double-click, right-drag, toolbar): put it back.
            self._rearm_pending = True
            self.schedule(self._rearm)
        except Exception as error:  # an observer cannot raise: VTK would print and swallow it
            self._rearm_failed(error)

    def _rearm(self):
        self._rearm_pending = False
        try:
            if self.active:
                self.rearm_count += 1
                self.arm()
        except Exception as error:
            self._rearm_failed(error)

    def _rearm_failed(self, error):
        """Clicks are off: say so in the status and to the user (never raised from an observer)."""
        logging.exception("SliceAndConquer: re-arming place mode failed")
        self.off_reason = f"clicks are off (re-arming failed: {error}); press p or n"
        if self.on_error is not None:
            self.on_error(f"Re-arming click placement failed: {error}", error)
        self._changed()

    def _changed(self):
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                logging.exception("SliceAndConquer: status callback failed")
