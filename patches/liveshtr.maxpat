{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 6,
   "revision": 0,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   40.0,
   80.0,
   1400.0,
   1260.0
  ],
  "bglocked": 0,
  "openinpresentation": 0,
  "default_fontsize": 12.0,
  "default_fontface": 0,
  "default_fontname": "Arial",
  "gridonopen": 1,
  "gridsize": [
   15.0,
   15.0
  ],
  "gridsnaponopen": 1,
  "objectsnaponopen": 1,
  "statusbarvisible": 2,
  "toolbarvisible": 1,
  "boxanimatetime": 200,
  "enablehscroll": 1,
  "enablevscroll": 1,
  "devicewidth": 0.0,
  "description": "liveshtr controller: OSC to `liveshtr serve`",
  "digest": "",
  "tags": "",
  "style": "",
  "subpatcher_template": "",
  "assistshowspatchername": 0,
  "boxes": [
   {
    "box": {
     "id": "obj-1",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      10.0,
      880.0,
      36.0
     ],
     "text": "liveshtr from Max. Start `liveshtr serve` (OSC on port 9000), then play. Feedback comes back on port 9002: the patch subscribes on load, and again every 2 s while no telemetry arrives. Esc: panic. Addresses: README.md next to this patch."
    }
   },
   {
    "box": {
     "id": "obj-2",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      70.0,
      85.0,
      20.0
     ],
     "text": "temperature"
    }
   },
   {
    "box": {
     "id": "obj-3",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      70.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 0.0,
     "size": 4.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-4",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      70.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 0.0,
     "maximum": 4.0
    }
   },
   {
    "box": {
     "id": "obj-5",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      70.0,
      213.0,
      22.0
     ],
     "text": "prepend /liveshtr/temperature"
    }
   },
   {
    "box": {
     "id": "obj-6",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      70.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-7",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      70.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-8",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      94.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-9",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      120.0,
      85.0,
      20.0
     ],
     "text": "gain"
    }
   },
   {
    "box": {
     "id": "obj-10",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      120.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 0.0,
     "size": 1.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-11",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      120.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 0.0,
     "maximum": 1.0
    }
   },
   {
    "box": {
     "id": "obj-12",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      120.0,
      164.0,
      22.0
     ],
     "text": "prepend /liveshtr/gain"
    }
   },
   {
    "box": {
     "id": "obj-13",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      120.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-14",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      120.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-15",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      144.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-16",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      170.0,
      85.0,
      20.0
     ],
     "text": "mix"
    }
   },
   {
    "box": {
     "id": "obj-17",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      170.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 0.0,
     "size": 1.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-18",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      170.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 0.0,
     "maximum": 1.0
    }
   },
   {
    "box": {
     "id": "obj-19",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      170.0,
      157.0,
      22.0
     ],
     "text": "prepend /liveshtr/mix"
    }
   },
   {
    "box": {
     "id": "obj-20",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      170.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-21",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      170.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-22",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      194.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-23",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      220.0,
      85.0,
      20.0
     ],
     "text": "drift"
    }
   },
   {
    "box": {
     "id": "obj-24",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      220.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 0.0,
     "size": 0.999,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-25",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      220.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 0.0,
     "maximum": 0.999
    }
   },
   {
    "box": {
     "id": "obj-26",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      220.0,
      171.0,
      22.0
     ],
     "text": "prepend /liveshtr/drift"
    }
   },
   {
    "box": {
     "id": "obj-27",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      220.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-28",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      220.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-29",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      244.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-30",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      270.0,
      85.0,
      20.0
     ],
     "text": "prime"
    }
   },
   {
    "box": {
     "id": "obj-31",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      270.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 0.0,
     "size": 1.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-32",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      270.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 0.0,
     "maximum": 1.0
    }
   },
   {
    "box": {
     "id": "obj-33",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      270.0,
      171.0,
      22.0
     ],
     "text": "prepend /liveshtr/prime"
    }
   },
   {
    "box": {
     "id": "obj-34",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      270.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-35",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      270.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-36",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      294.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-37",
     "maxclass": "toggle",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      20.0,
      380.0,
      30.0,
      30.0
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-38",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      52.0,
      385.0,
      50.0,
      20.0
     ],
     "text": "freeze"
    }
   },
   {
    "box": {
     "id": "obj-39",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      110.0,
      380.0,
      30.0,
      30.0
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-40",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      142.0,
      385.0,
      50.0,
      20.0
     ],
     "text": "reset"
    }
   },
   {
    "box": {
     "id": "obj-41",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      200.0,
      375.0,
      40.0,
      40.0
     ],
     "parameter_enable": 0,
     "bgcolor": [
      1.0,
      0.25,
      0.25,
      1.0
     ],
     "blinkcolor": [
      1.0,
      1.0,
      1.0,
      1.0
     ]
    }
   },
   {
    "box": {
     "id": "obj-42",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      244.0,
      385.0,
      90.0,
      20.0
     ],
     "text": "PANIC (Esc)"
    }
   },
   {
    "box": {
     "id": "obj-43",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      380.0,
      178.0,
      22.0
     ],
     "text": "prepend /liveshtr/freeze"
    }
   },
   {
    "box": {
     "id": "obj-44",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      380.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-45",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      410.0,
      115.0,
      22.0
     ],
     "text": "/liveshtr/reset"
    }
   },
   {
    "box": {
     "id": "obj-46",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      410.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-47",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      440.0,
      115.0,
      22.0
     ],
     "text": "/liveshtr/panic"
    }
   },
   {
    "box": {
     "id": "obj-48",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      440.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-49",
     "maxclass": "newobj",
     "numinlets": 0,
     "numoutlets": 4,
     "outlettype": [
      "int",
      "int",
      "int",
      "int"
     ],
     "patching_rect": [
      250.0,
      440.0,
      40.0,
      22.0
     ],
     "text": "key"
    }
   },
   {
    "box": {
     "id": "obj-50",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      250.0,
      470.0,
      52.0,
      22.0
     ],
     "text": "sel 27"
    }
   },
   {
    "box": {
     "id": "obj-51",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      380.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-52",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      510.0,
      330.0,
      34.0
     ],
     "text": "latent offsets, one slider per dimension (-4..4); resized to the model's dimensions on connect"
    }
   },
   {
    "box": {
     "id": "obj-53",
     "maxclass": "multislider",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      20.0,
      545.0,
      330.0,
      120.0
     ],
     "parameter_enable": 0,
     "size": 8,
     "setminmax": [
      -4.0,
      4.0
     ],
     "setstyle": 1,
     "signed": 1,
     "spacing": 2
    }
   },
   {
    "box": {
     "id": "obj-54",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      545.0,
      178.0,
      22.0
     ],
     "text": "prepend /liveshtr/latent"
    }
   },
   {
    "box": {
     "id": "obj-55",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      545.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-56",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      380.0,
      590.0,
      45.0,
      22.0
     ],
     "text": "t l l"
    }
   },
   {
    "box": {
     "id": "obj-57",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      440.0,
      620.0,
      52.0,
      22.0
     ],
     "text": "zl len"
    }
   },
   {
    "box": {
     "id": "obj-58",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      440.0,
      650.0,
      94.0,
      22.0
     ],
     "text": "prepend size"
    }
   },
   {
    "box": {
     "id": "obj-59",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      680.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-60",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      690.0,
      330.0,
      34.0
     ],
     "text": "XY: two dimensions of the offsets (latent) or of the target point (raise mix to hear the target)"
    }
   },
   {
    "box": {
     "id": "obj-61",
     "maxclass": "pictslider",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "int",
      "int"
     ],
     "patching_rect": [
      20.0,
      730.0,
      180.0,
      180.0
     ],
     "parameter_enable": 0,
     "leftvalue": -1000,
     "rightvalue": 1000,
     "bottomvalue": -1000,
     "topvalue": 1000
    }
   },
   {
    "box": {
     "id": "obj-62",
     "maxclass": "umenu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "int",
      "",
      ""
     ],
     "patching_rect": [
      215.0,
      730.0,
      100.0,
      22.0
     ],
     "parameter_enable": 0,
     "items": [
      "latent",
      ",",
      "target"
     ]
    }
   },
   {
    "box": {
     "id": "obj-63",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      215.0,
      760.0,
      50.0,
      20.0
     ],
     "text": "x dim"
    }
   },
   {
    "box": {
     "id": "obj-64",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      265.0,
      760.0,
      50.0,
      22.0
     ],
     "parameter_enable": 0,
     "minimum": 0,
     "maximum": 63
    }
   },
   {
    "box": {
     "id": "obj-65",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      215.0,
      790.0,
      50.0,
      20.0
     ],
     "text": "y dim"
    }
   },
   {
    "box": {
     "id": "obj-66",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      265.0,
      790.0,
      50.0,
      22.0
     ],
     "parameter_enable": 0,
     "minimum": 0,
     "maximum": 63
    }
   },
   {
    "box": {
     "id": "obj-67",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      380.0,
      730.0,
      40.0,
      22.0
     ],
     "text": "+ 1"
    }
   },
   {
    "box": {
     "id": "obj-68",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "float"
     ],
     "patching_rect": [
      380.0,
      770.0,
      52.0,
      22.0
     ],
     "text": "/ 250."
    }
   },
   {
    "box": {
     "id": "obj-69",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "float"
     ],
     "patching_rect": [
      380.0,
      800.0,
      45.0,
      22.0
     ],
     "text": "t b f"
    }
   },
   {
    "box": {
     "id": "obj-70",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      380.0,
      830.0,
      40.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-71",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      860.0,
      73.0,
      22.0
     ],
     "text": "pack 0 0."
    }
   },
   {
    "box": {
     "id": "obj-72",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      380.0,
      890.0,
      52.0,
      22.0
     ],
     "text": "gate 2"
    }
   },
   {
    "box": {
     "id": "obj-73",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      920.0,
      227.0,
      22.0
     ],
     "text": "sprintf /liveshtr/latent/%ld %f"
    }
   },
   {
    "box": {
     "id": "obj-74",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      950.0,
      227.0,
      22.0
     ],
     "text": "sprintf /liveshtr/target/%ld %f"
    }
   },
   {
    "box": {
     "id": "obj-75",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      380.0,
      980.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-76",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "float"
     ],
     "patching_rect": [
      640.0,
      770.0,
      52.0,
      22.0
     ],
     "text": "/ 250."
    }
   },
   {
    "box": {
     "id": "obj-77",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "float"
     ],
     "patching_rect": [
      640.0,
      800.0,
      45.0,
      22.0
     ],
     "text": "t b f"
    }
   },
   {
    "box": {
     "id": "obj-78",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      640.0,
      830.0,
      40.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-79",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      640.0,
      860.0,
      73.0,
      22.0
     ],
     "text": "pack 0 0."
    }
   },
   {
    "box": {
     "id": "obj-80",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      640.0,
      890.0,
      52.0,
      22.0
     ],
     "text": "gate 2"
    }
   },
   {
    "box": {
     "id": "obj-81",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      640.0,
      920.0,
      227.0,
      22.0
     ],
     "text": "sprintf /liveshtr/latent/%ld %f"
    }
   },
   {
    "box": {
     "id": "obj-82",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      640.0,
      950.0,
      227.0,
      22.0
     ],
     "text": "sprintf /liveshtr/target/%ld %f"
    }
   },
   {
    "box": {
     "id": "obj-83",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      640.0,
      980.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-84",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      70.0,
      90.0,
      20.0
     ],
     "text": "server port"
    }
   },
   {
    "box": {
     "id": "obj-85",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      70.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "minimum": 1,
     "maximum": 65535
    }
   },
   {
    "box": {
     "id": "obj-86",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      100.0,
      90.0,
      20.0
     ],
     "text": "feedback port"
    }
   },
   {
    "box": {
     "id": "obj-87",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      100.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "minimum": 1,
     "maximum": 65535
    }
   },
   {
    "box": {
     "id": "obj-88",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      880.0,
      135.0,
      160.0,
      22.0
     ],
     "text": "waiting"
    }
   },
   {
    "box": {
     "id": "obj-89",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      175.0,
      90.0,
      20.0
     ],
     "text": "buffer ms"
    }
   },
   {
    "box": {
     "id": "obj-90",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      175.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-91",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      203.0,
      90.0,
      20.0
     ],
     "text": "underruns"
    }
   },
   {
    "box": {
     "id": "obj-92",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      203.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-93",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      231.0,
      90.0,
      20.0
     ],
     "text": "device xruns"
    }
   },
   {
    "box": {
     "id": "obj-94",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      231.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-95",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      259.0,
      90.0,
      20.0
     ],
     "text": "peak dB"
    }
   },
   {
    "box": {
     "id": "obj-96",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      259.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-97",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      287.0,
      90.0,
      20.0
     ],
     "text": "rms dB"
    }
   },
   {
    "box": {
     "id": "obj-98",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      287.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-99",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      315.0,
      90.0,
      20.0
     ],
     "text": "errors"
    }
   },
   {
    "box": {
     "id": "obj-100",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      975.0,
      315.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6
    }
   },
   {
    "box": {
     "id": "obj-101",
     "maxclass": "newobj",
     "numinlets": 0,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      880.0,
      410.0,
      66.0,
      22.0
     ],
     "text": "r ---osc"
    }
   },
   {
    "box": {
     "id": "obj-102",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      880.0,
      440.0,
      164.0,
      22.0
     ],
     "text": "udpsend 127.0.0.1 9000"
    }
   },
   {
    "box": {
     "id": "obj-103",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      880.0,
      490.0,
      115.0,
      22.0
     ],
     "text": "udpreceive 9002"
    }
   },
   {
    "box": {
     "id": "obj-104",
     "maxclass": "newobj",
     "numinlets": 13,
     "numoutlets": 13,
     "outlettype": [
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      "",
      ""
     ],
     "patching_rect": [
      880.0,
      520.0,
      420.0,
      22.0
     ],
     "text": "route /liveshtr/temperature /liveshtr/gain /liveshtr/mix /liveshtr/drift /liveshtr/prime /liveshtr/freeze /liveshtr/latent /liveshtr/telemetry /liveshtr/error /liveshtr/clamped /liveshtr/tempo /liveshtr/model"
    }
   },
   {
    "box": {
     "id": "obj-105",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 10,
     "outlettype": [
      "float",
      "float",
      "float",
      "float",
      "float",
      "float",
      "float",
      "float",
      "float",
      "float"
     ],
     "patching_rect": [
      880.0,
      560.0,
      200.0,
      22.0
     ],
     "text": "unpack f f f f f f f f f f"
    }
   },
   {
    "box": {
     "id": "obj-106",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1100.0,
      560.0,
      150.0,
      22.0
     ],
     "text": "print liveshtr-error"
    }
   },
   {
    "box": {
     "id": "obj-107",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1100.0,
      590.0,
      164.0,
      22.0
     ],
     "text": "print liveshtr-clamped"
    }
   },
   {
    "box": {
     "id": "obj-108",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      880.0,
      630.0,
      66.0,
      22.0
     ],
     "text": "loadbang"
    }
   },
   {
    "box": {
     "id": "obj-109",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      "bang"
     ],
     "patching_rect": [
      880.0,
      660.0,
      59.0,
      22.0
     ],
     "text": "t b b b"
    }
   },
   {
    "box": {
     "id": "obj-110",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1000.0,
      690.0,
      40.0,
      22.0
     ],
     "text": "9002"
    }
   },
   {
    "box": {
     "id": "obj-111",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      940.0,
      720.0,
      40.0,
      22.0
     ],
     "text": "9000"
    }
   },
   {
    "box": {
     "id": "obj-112",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      880.0,
      690.0,
      80.0,
      22.0
     ],
     "text": "delay 2000"
    }
   },
   {
    "box": {
     "id": "obj-113",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      880.0,
      720.0,
      40.0,
      22.0
     ],
     "text": "1"
    }
   },
   {
    "box": {
     "id": "obj-114",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      880.0,
      750.0,
      80.0,
      22.0
     ],
     "text": "metro 2000"
    }
   },
   {
    "box": {
     "id": "obj-115",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "bang"
     ],
     "patching_rect": [
      880.0,
      780.0,
      45.0,
      22.0
     ],
     "text": "t b b"
    }
   },
   {
    "box": {
     "id": "obj-116",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      940.0,
      810.0,
      40.0,
      22.0
     ],
     "text": "0"
    }
   },
   {
    "box": {
     "id": "obj-117",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      880.0,
      840.0,
      40.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-118",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      880.0,
      870.0,
      45.0,
      22.0
     ],
     "text": "sel 0"
    }
   },
   {
    "box": {
     "id": "obj-119",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "int",
      "int"
     ],
     "patching_rect": [
      940.0,
      870.0,
      52.0,
      22.0
     ],
     "text": "change"
    }
   },
   {
    "box": {
     "id": "obj-120",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "bang",
      ""
     ],
     "patching_rect": [
      940.0,
      900.0,
      59.0,
      22.0
     ],
     "text": "sel 0 1"
    }
   },
   {
    "box": {
     "id": "obj-121",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      880.0,
      930.0,
      90.0,
      22.0
     ],
     "text": "set waiting"
    }
   },
   {
    "box": {
     "id": "obj-122",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      980.0,
      930.0,
      100.0,
      22.0
     ],
     "text": "set connected"
    }
   },
   {
    "box": {
     "id": "obj-123",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1100.0,
      810.0,
      40.0,
      22.0
     ],
     "text": "1"
    }
   },
   {
    "box": {
     "id": "obj-124",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 4,
     "outlettype": [
      "int",
      "int",
      "int",
      "bang"
     ],
     "patching_rect": [
      1120.0,
      100.0,
      73.0,
      22.0
     ],
     "text": "t i i i b"
    }
   },
   {
    "box": {
     "id": "obj-125",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      1120.0,
      255.0,
      40.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-126",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      ""
     ],
     "patching_rect": [
      1120.0,
      285.0,
      45.0,
      22.0
     ],
     "text": "sel 0"
    }
   },
   {
    "box": {
     "id": "obj-127",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1120.0,
      315.0,
      213.0,
      22.0
     ],
     "text": "prepend /liveshtr/unsubscribe"
    }
   },
   {
    "box": {
     "id": "obj-128",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1120.0,
      395.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-129",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1120.0,
      130.0,
      94.0,
      22.0
     ],
     "text": "prepend port"
    }
   },
   {
    "box": {
     "id": "obj-130",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "int"
     ],
     "patching_rect": [
      1220.0,
      70.0,
      45.0,
      22.0
     ],
     "text": "t b i"
    }
   },
   {
    "box": {
     "id": "obj-131",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1260.0,
      100.0,
      94.0,
      22.0
     ],
     "text": "prepend port"
    }
   },
   {
    "box": {
     "id": "obj-132",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      1120.0,
      160.0,
      40.0,
      22.0
     ],
     "text": "i"
    }
   },
   {
    "box": {
     "id": "obj-133",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1120.0,
      190.0,
      199.0,
      22.0
     ],
     "text": "prepend /liveshtr/subscribe"
    }
   },
   {
    "box": {
     "id": "obj-134",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      1120.0,
      220.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-135",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "bang",
      "bang"
     ],
     "patching_rect": [
      1060.0,
      660.0,
      45.0,
      22.0
     ],
     "text": "t b b"
    }
   },
   {
    "box": {
     "id": "obj-136",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1060.0,
      750.0,
      40.0,
      22.0
     ],
     "text": "0"
    }
   },
   {
    "box": {
     "id": "obj-137",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1110.0,
      750.0,
      40.0,
      22.0
     ],
     "text": "0"
    }
   },
   {
    "box": {
     "id": "obj-138",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      1160.0,
      750.0,
      40.0,
      22.0
     ],
     "text": "1"
    }
   },
   {
    "box": {
     "id": "obj-139",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      320.0,
      85.0,
      20.0
     ],
     "text": "tempo"
    }
   },
   {
    "box": {
     "id": "obj-140",
     "maxclass": "slider",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      105.0,
      320.0,
      170.0,
      20.0
     ],
     "parameter_enable": 0,
     "floatoutput": 1,
     "min": 20.0,
     "size": 280.0,
     "orientation": 1
    }
   },
   {
    "box": {
     "id": "obj-141",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "bang"
     ],
     "patching_rect": [
      285.0,
      320.0,
      60.0,
      22.0
     ],
     "parameter_enable": 0,
     "format": 6,
     "minimum": 20.0,
     "maximum": 300.0
    }
   },
   {
    "box": {
     "id": "obj-142",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      380.0,
      320.0,
      171.0,
      22.0
     ],
     "text": "prepend /liveshtr/tempo"
    }
   },
   {
    "box": {
     "id": "obj-143",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      600.0,
      320.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-144",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      680.0,
      320.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-145",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      470.0,
      344.0,
      87.0,
      22.0
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-146",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      1030.0,
      640.0,
      20.0
     ],
     "text": "scenes: type a name, Enter, then save, or recall (morphing over the seconds); rec / stop: takes (serve --record DIR)"
    }
   },
   {
    "box": {
     "id": "obj-147",
     "maxclass": "textedit",
     "numinlets": 1,
     "numoutlets": 4,
     "patching_rect": [
      20.0,
      1060.0,
      160.0,
      22.0
     ],
     "outlettype": [
      "",
      "int",
      "",
      ""
     ],
     "keymode": 1,
     "lines": 1,
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-148",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      20.0,
      1100.0,
      60.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "route text"
    }
   },
   {
    "box": {
     "id": "obj-149",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      20.0,
      1130.0,
      50.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "zl reg"
    }
   },
   {
    "box": {
     "id": "obj-150",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200.0,
      1060.0,
      24.0,
      24.0
     ],
     "outlettype": [
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-151",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      226.0,
      1062.0,
      40.0,
      20.0
     ],
     "text": "save"
    }
   },
   {
    "box": {
     "id": "obj-152",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      1160.0,
      190.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend /liveshtr/scene/save"
    }
   },
   {
    "box": {
     "id": "obj-153",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      1190.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-154",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      280.0,
      1060.0,
      24.0,
      24.0
     ],
     "outlettype": [
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-155",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      306.0,
      1062.0,
      44.0,
      20.0
     ],
     "text": "recall"
    }
   },
   {
    "box": {
     "id": "obj-156",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      360.0,
      1060.0,
      50.0,
      22.0
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "minimum": 0.0,
     "maximum": 600.0
    }
   },
   {
    "box": {
     "id": "obj-157",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      412.0,
      1062.0,
      60.0,
      20.0
     ],
     "text": "morph s"
    }
   },
   {
    "box": {
     "id": "obj-158",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "patching_rect": [
      240.0,
      1130.0,
      50.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "zl reg"
    }
   },
   {
    "box": {
     "id": "obj-159",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      240.0,
      1160.0,
      60.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "append 0."
    }
   },
   {
    "box": {
     "id": "obj-160",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      240.0,
      1190.0,
      200.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend /liveshtr/scene/recall"
    }
   },
   {
    "box": {
     "id": "obj-161",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      240.0,
      1220.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-162",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      500.0,
      1060.0,
      24.0,
      24.0
     ],
     "outlettype": [
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-163",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      526.0,
      1062.0,
      30.0,
      20.0
     ],
     "text": "rec"
    }
   },
   {
    "box": {
     "id": "obj-164",
     "maxclass": "button",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      570.0,
      1060.0,
      24.0,
      24.0
     ],
     "outlettype": [
      "bang"
     ],
     "parameter_enable": 0
    }
   },
   {
    "box": {
     "id": "obj-165",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      596.0,
      1062.0,
      36.0,
      20.0
     ],
     "text": "stop"
    }
   },
   {
    "box": {
     "id": "obj-166",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      500.0,
      1100.0,
      140.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "/liveshtr/record/start"
    }
   },
   {
    "box": {
     "id": "obj-167",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      500.0,
      1130.0,
      140.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "/liveshtr/record/stop"
    }
   },
   {
    "box": {
     "id": "obj-168",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      500.0,
      1160.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-169",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      1250.0,
      640.0,
      20.0
     ],
     "text": "set list (serve MODEL MODEL ...): crossfade to model n over the seconds; the name of the model playing beside it"
    }
   },
   {
    "box": {
     "id": "obj-170",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20.0,
      1280.0,
      50.0,
      22.0
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "minimum": 0
    }
   },
   {
    "box": {
     "id": "obj-171",
     "maxclass": "flonum",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      90.0,
      1280.0,
      50.0,
      22.0
     ],
     "outlettype": [
      "",
      "bang"
     ],
     "parameter_enable": 0,
     "minimum": 0.0,
     "maximum": 60.0
    }
   },
   {
    "box": {
     "id": "obj-172",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      142.0,
      1282.0,
      50.0,
      20.0
     ],
     "text": "fade s"
    }
   },
   {
    "box": {
     "id": "obj-173",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      1320.0,
      60.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "pack 0 2."
    }
   },
   {
    "box": {
     "id": "obj-174",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20.0,
      1350.0,
      150.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend /liveshtr/model"
    }
   },
   {
    "box": {
     "id": "obj-175",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20.0,
      1380.0,
      66.0,
      22.0
     ],
     "text": "s ---osc"
    }
   },
   {
    "box": {
     "id": "obj-176",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      1310.0,
      560.0,
      70.0,
      22.0
     ],
     "outlettype": [
      "",
      ""
     ],
     "text": "unpack 0 s"
    }
   },
   {
    "box": {
     "id": "obj-177",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      1310.0,
      590.0,
      80.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-178",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      1390.0,
      590.0,
      80.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "prepend set"
    }
   },
   {
    "box": {
     "id": "obj-179",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      200.0,
      1280.0,
      160.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": ""
    }
   },
   {
    "box": {
     "id": "obj-180",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      200.0,
      1320.0,
      60.0,
      22.0
     ],
     "outlettype": [
      "bang"
     ],
     "text": "loadbang"
    }
   },
   {
    "box": {
     "id": "obj-181",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      200.0,
      1350.0,
      50.0,
      22.0
     ],
     "outlettype": [
      ""
     ],
     "text": "set 2."
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "destination": [
      "obj-3",
      0
     ],
     "source": [
      "obj-8",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-4",
      0
     ],
     "source": [
      "obj-8",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-5",
      0
     ],
     "source": [
      "obj-3",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-6",
      0
     ],
     "source": [
      "obj-5",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-3",
      0
     ],
     "source": [
      "obj-4",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-7",
      0
     ],
     "source": [
      "obj-3",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-4",
      0
     ],
     "source": [
      "obj-7",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-10",
      0
     ],
     "source": [
      "obj-15",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-11",
      0
     ],
     "source": [
      "obj-15",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-12",
      0
     ],
     "source": [
      "obj-10",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-13",
      0
     ],
     "source": [
      "obj-12",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-10",
      0
     ],
     "source": [
      "obj-11",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-14",
      0
     ],
     "source": [
      "obj-10",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-11",
      0
     ],
     "source": [
      "obj-14",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-17",
      0
     ],
     "source": [
      "obj-22",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-18",
      0
     ],
     "source": [
      "obj-22",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-19",
      0
     ],
     "source": [
      "obj-17",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-20",
      0
     ],
     "source": [
      "obj-19",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-17",
      0
     ],
     "source": [
      "obj-18",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-21",
      0
     ],
     "source": [
      "obj-17",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-18",
      0
     ],
     "source": [
      "obj-21",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-24",
      0
     ],
     "source": [
      "obj-29",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-25",
      0
     ],
     "source": [
      "obj-29",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-26",
      0
     ],
     "source": [
      "obj-24",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-27",
      0
     ],
     "source": [
      "obj-26",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-24",
      0
     ],
     "source": [
      "obj-25",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-28",
      0
     ],
     "source": [
      "obj-24",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-25",
      0
     ],
     "source": [
      "obj-28",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-31",
      0
     ],
     "source": [
      "obj-36",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-32",
      0
     ],
     "source": [
      "obj-36",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-33",
      0
     ],
     "source": [
      "obj-31",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-34",
      0
     ],
     "source": [
      "obj-33",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-31",
      0
     ],
     "source": [
      "obj-32",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-35",
      0
     ],
     "source": [
      "obj-31",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-32",
      0
     ],
     "source": [
      "obj-35",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-43",
      0
     ],
     "source": [
      "obj-37",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-44",
      0
     ],
     "source": [
      "obj-43",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-45",
      0
     ],
     "source": [
      "obj-39",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-46",
      0
     ],
     "source": [
      "obj-45",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-47",
      0
     ],
     "source": [
      "obj-41",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-48",
      0
     ],
     "source": [
      "obj-47",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-50",
      0
     ],
     "source": [
      "obj-49",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-41",
      0
     ],
     "source": [
      "obj-50",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-37",
      0
     ],
     "source": [
      "obj-51",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-54",
      0
     ],
     "source": [
      "obj-53",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-55",
      0
     ],
     "source": [
      "obj-54",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-57",
      0
     ],
     "source": [
      "obj-56",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-58",
      0
     ],
     "source": [
      "obj-57",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-53",
      0
     ],
     "source": [
      "obj-58",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-59",
      0
     ],
     "source": [
      "obj-56",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-53",
      0
     ],
     "source": [
      "obj-59",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-68",
      0
     ],
     "source": [
      "obj-61",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-69",
      0
     ],
     "source": [
      "obj-68",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-71",
      1
     ],
     "source": [
      "obj-69",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-70",
      0
     ],
     "source": [
      "obj-69",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-71",
      0
     ],
     "source": [
      "obj-70",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-72",
      1
     ],
     "source": [
      "obj-71",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-73",
      0
     ],
     "source": [
      "obj-72",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-74",
      0
     ],
     "source": [
      "obj-72",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-75",
      0
     ],
     "source": [
      "obj-73",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-75",
      0
     ],
     "source": [
      "obj-74",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-70",
      1
     ],
     "source": [
      "obj-64",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-72",
      0
     ],
     "source": [
      "obj-67",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-76",
      0
     ],
     "source": [
      "obj-61",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-77",
      0
     ],
     "source": [
      "obj-76",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-79",
      1
     ],
     "source": [
      "obj-77",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-78",
      0
     ],
     "source": [
      "obj-77",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-79",
      0
     ],
     "source": [
      "obj-78",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-80",
      1
     ],
     "source": [
      "obj-79",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-81",
      0
     ],
     "source": [
      "obj-80",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-82",
      0
     ],
     "source": [
      "obj-80",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-83",
      0
     ],
     "source": [
      "obj-81",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-83",
      0
     ],
     "source": [
      "obj-82",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-78",
      1
     ],
     "source": [
      "obj-66",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-80",
      0
     ],
     "source": [
      "obj-67",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-67",
      0
     ],
     "source": [
      "obj-62",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-102",
      0
     ],
     "source": [
      "obj-101",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-104",
      0
     ],
     "source": [
      "obj-103",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-8",
      0
     ],
     "source": [
      "obj-104",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-15",
      0
     ],
     "source": [
      "obj-104",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-22",
      0
     ],
     "source": [
      "obj-104",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-29",
      0
     ],
     "source": [
      "obj-104",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-36",
      0
     ],
     "source": [
      "obj-104",
      4
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-51",
      0
     ],
     "source": [
      "obj-104",
      5
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-56",
      0
     ],
     "source": [
      "obj-104",
      6
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-105",
      0
     ],
     "source": [
      "obj-104",
      7
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-106",
      0
     ],
     "source": [
      "obj-104",
      8
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-107",
      0
     ],
     "source": [
      "obj-104",
      9
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-90",
      0
     ],
     "source": [
      "obj-105",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-92",
      0
     ],
     "source": [
      "obj-105",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-94",
      0
     ],
     "source": [
      "obj-105",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-96",
      0
     ],
     "source": [
      "obj-105",
      7
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-98",
      0
     ],
     "source": [
      "obj-105",
      8
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-100",
      0
     ],
     "source": [
      "obj-105",
      9
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-109",
      0
     ],
     "source": [
      "obj-108",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-110",
      0
     ],
     "source": [
      "obj-109",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-87",
      0
     ],
     "source": [
      "obj-110",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-111",
      0
     ],
     "source": [
      "obj-109",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-85",
      0
     ],
     "source": [
      "obj-111",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-112",
      0
     ],
     "source": [
      "obj-109",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-113",
      0
     ],
     "source": [
      "obj-112",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-114",
      0
     ],
     "source": [
      "obj-113",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-124",
      0
     ],
     "source": [
      "obj-87",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-129",
      0
     ],
     "source": [
      "obj-124",
      2
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-125",
      0
     ],
     "source": [
      "obj-124",
      3
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-126",
      0
     ],
     "source": [
      "obj-125",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-127",
      0
     ],
     "source": [
      "obj-126",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-128",
      0
     ],
     "source": [
      "obj-127",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-125",
      1
     ],
     "source": [
      "obj-124",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-103",
      0
     ],
     "source": [
      "obj-129",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-132",
      0
     ],
     "source": [
      "obj-124",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-133",
      0
     ],
     "source": [
      "obj-132",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-134",
      0
     ],
     "source": [
      "obj-133",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-130",
      0
     ],
     "source": [
      "obj-85",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-131",
      0
     ],
     "source": [
      "obj-130",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-102",
      0
     ],
     "source": [
      "obj-131",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-132",
      0
     ],
     "source": [
      "obj-130",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-115",
      0
     ],
     "source": [
      "obj-114",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-117",
      0
     ],
     "source": [
      "obj-115",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-116",
      0
     ],
     "source": [
      "obj-115",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-117",
      1
     ],
     "source": [
      "obj-116",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-118",
      0
     ],
     "source": [
      "obj-117",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-132",
      0
     ],
     "source": [
      "obj-118",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-119",
      0
     ],
     "source": [
      "obj-117",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-119",
      0
     ],
     "source": [
      "obj-123",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-120",
      0
     ],
     "source": [
      "obj-119",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-121",
      0
     ],
     "source": [
      "obj-120",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-122",
      0
     ],
     "source": [
      "obj-120",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-88",
      0
     ],
     "source": [
      "obj-121",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-88",
      0
     ],
     "source": [
      "obj-122",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-123",
      0
     ],
     "source": [
      "obj-104",
      7
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-117",
      1
     ],
     "source": [
      "obj-123",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-135",
      0
     ],
     "source": [
      "obj-108",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-136",
      0
     ],
     "source": [
      "obj-135",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-62",
      0
     ],
     "source": [
      "obj-136",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-137",
      0
     ],
     "source": [
      "obj-135",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-64",
      0
     ],
     "source": [
      "obj-137",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-138",
      0
     ],
     "source": [
      "obj-135",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-66",
      0
     ],
     "source": [
      "obj-138",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-140",
      0
     ],
     "source": [
      "obj-145",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-141",
      0
     ],
     "source": [
      "obj-145",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-142",
      0
     ],
     "source": [
      "obj-140",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-143",
      0
     ],
     "source": [
      "obj-142",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-140",
      0
     ],
     "source": [
      "obj-141",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-144",
      0
     ],
     "source": [
      "obj-140",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-141",
      0
     ],
     "source": [
      "obj-144",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-145",
      0
     ],
     "source": [
      "obj-104",
      10
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-148",
      0
     ],
     "source": [
      "obj-147",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-149",
      1
     ],
     "source": [
      "obj-148",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-158",
      1
     ],
     "source": [
      "obj-148",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-149",
      0
     ],
     "source": [
      "obj-150",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-152",
      0
     ],
     "source": [
      "obj-149",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-153",
      0
     ],
     "source": [
      "obj-152",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-158",
      0
     ],
     "source": [
      "obj-154",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-159",
      1
     ],
     "source": [
      "obj-156",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-159",
      0
     ],
     "source": [
      "obj-158",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-160",
      0
     ],
     "source": [
      "obj-159",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-161",
      0
     ],
     "source": [
      "obj-160",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-166",
      0
     ],
     "source": [
      "obj-162",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-167",
      0
     ],
     "source": [
      "obj-164",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-168",
      0
     ],
     "source": [
      "obj-166",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-168",
      0
     ],
     "source": [
      "obj-167",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-173",
      0
     ],
     "source": [
      "obj-170",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-173",
      1
     ],
     "source": [
      "obj-171",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-174",
      0
     ],
     "source": [
      "obj-173",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-175",
      0
     ],
     "source": [
      "obj-174",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-176",
      0
     ],
     "source": [
      "obj-104",
      11
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-177",
      0
     ],
     "source": [
      "obj-176",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-170",
      0
     ],
     "source": [
      "obj-177",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-178",
      0
     ],
     "source": [
      "obj-176",
      1
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-179",
      0
     ],
     "source": [
      "obj-178",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-181",
      0
     ],
     "source": [
      "obj-180",
      0
     ]
    }
   },
   {
    "patchline": {
     "destination": [
      "obj-171",
      0
     ],
     "source": [
      "obj-181",
      0
     ]
    }
   }
  ],
  "dependency_cache": [],
  "autosave": 0
 }
}
