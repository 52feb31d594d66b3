"""Slice and Conquer: the 3D Slicer module (Qt widget and wiring only).

The logic lives in the SliceAndConquerLib package next to this file.
"""

import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class SliceAndConquer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Slice and Conquer")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SliceAndConquer team"]
        self.parent.helpText = _("""
Interactive click-based 3D segmentation. Click positive and negative points on a slice in the Red, Yellow
or Green view: a 2D network segments that slice after every click. Accepted slices are turned into a 3D mask
by a 3D network, and the views jump to the slice recommended for the next correction.
See the <a href="https://github.com/sliceandconquer/SliceAndConquer">project page</a>.
""")
        self.parent.acknowledgementText = _("""
Implements the "Slice and Conquer" interactive segmentation method. Built on 3D Slicer (module
layout from its Extension Wizard) and PyTorch, installed through the PyTorch extension.
""")


@parameterNodeWrapper
class SliceAndConquerParameterNode:
    """
    inputVolume - the image to segment.
    segmentation - the segmentation that receives the result.
    segmentId - the segment being drawn.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    segmentId: str = ""


class SliceAndConquerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SliceAndConquer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui forwards mrmlSceneChanged(vtkMRMLScene*) to each MRML widget's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SliceAndConquerLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        # No GUI connector exists for qMRMLSegmentSelectorWidget: the segment is wired by hand.
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)

        self.ui.statusLabel.text = _("Interactive segmentation arrives with the next release.")
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode: SliceAndConquerParameterNode | None) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateSegmentSelector)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets with a "SlicerParameterName" property in the .ui are bound both ways.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateSegmentSelector)
            self._updateSegmentSelector()

    def _updateSegmentSelector(self, caller=None, event=None) -> None:
        """Show the parameter node's segmentation and segment in the segment selector."""
        if not self._parameterNode:
            return
        segmentId = self._parameterNode.segmentId  # read first: a new node makes the selector pick a segment
        if self.ui.segmentSelector.currentNode() != self._parameterNode.segmentation:
            self.ui.segmentSelector.setCurrentNode(self._parameterNode.segmentation)
        if segmentId and self.ui.segmentSelector.currentSegmentID() != segmentId:
            self.ui.segmentSelector.setCurrentSegmentID(segmentId)  # ignored if no longer in the segmentation

    def onSegmentChanged(self, segmentId) -> None:
        if self._parameterNode and self._parameterNode.segmentId != (segmentId or ""):
            self._parameterNode.segmentId = segmentId or ""


class SliceAndConquerLogic(ScriptedLoadableModuleLogic):
    """Only holds the parameter node; the computation lives in SliceAndConquerLib."""

    def getParameterNode(self) -> SliceAndConquerParameterNode:
        return SliceAndConquerParameterNode(super().getParameterNode())


class SliceAndConquerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_ModuleLoads()

    def test_ModuleLoads(self):
        import SliceAndConquerLib

        self.assertIsInstance(SliceAndConquerLib.__version__, str)
        parameterNode = SliceAndConquerLogic().getParameterNode()
        self.assertEqual(parameterNode.segmentId, "")
        self.delayDisplay("Test passed")
